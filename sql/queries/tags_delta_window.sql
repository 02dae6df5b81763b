-- tags_delta_window: paid orders that left the loyalty window, [old_window_start,
-- window_start), per customer not recomputed from the orders (their window figures are
-- lowered by exactly these: tags_agg_window_out). Orders added tonight are left out: they are
-- added against the new window start (tags_agg_additions), never counted in the old one.
INSERT INTO tmp_tag_window (customer_id, n, amount)
SELECT o.customer_id, COUNT(*), SUM(CAST(COALESCE(o.amount, 0) AS {float}))
FROM orders o
WHERE o.paid_at >= :old_window_start AND o.paid_at < :window_start AND o.status = 'paid'
  AND NOT EXISTS (SELECT 1 FROM tmp_tag_delta d WHERE d.customer_id = o.customer_id)
  AND NOT EXISTS (SELECT 1 FROM tmp_add_orders a WHERE a.customer_id = o.customer_id AND a.order_id = o.order_id)
GROUP BY o.customer_id
