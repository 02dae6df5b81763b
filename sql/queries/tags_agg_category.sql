-- tags_agg_category: items bought per (customer, category) in paid orders before the
-- cutoff, into {cat_table} (the favourite category is picked from it: tags_agg_top).
-- {orders}/{scope}: every order, or the orders of the customers in tmp_tag_delta.
INSERT INTO {cat_table} (customer_id, category, qty)
SELECT o.customer_id, i.category, SUM(COALESCE(i.quantity, 1)) AS qty
FROM {orders}
JOIN order_items i ON i.order_id = o.order_id
WHERE {scope}{plus}o.paid_at < :cutoff AND o.status = 'paid' AND i.category IS NOT NULL
GROUP BY o.customer_id, i.category
