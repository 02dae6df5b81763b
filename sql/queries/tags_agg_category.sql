-- tags_agg_category: items bought per (customer, category) in paid orders before the
-- cutoff, into {cat_table} (the favourite category is picked from it: tags_agg_top).
-- {items}: every item with its order (a full pass on SQLite scans the items in storage
-- order and finds each order by its key), or the items of the orders of the customers in
-- tmp_tag_delta (by the items' key).
INSERT INTO {cat_table} (customer_id, category, qty)
SELECT o.customer_id, i.category, SUM(COALESCE(i.quantity, 1)) AS qty
FROM {items}
WHERE {items_scope}{plus}o.paid_at < :cutoff AND o.status = 'paid' AND i.category IS NOT NULL
GROUP BY o.customer_id, i.category
