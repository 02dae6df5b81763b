-- tags_delta_check: a customer gets additions only if every order counted before is still
-- there before the previous cutoff (same count): an order whose payment time moved past it,
-- or that vanished, sends the customer to a recompute from the orders.
INSERT INTO tmp_tag_delta (customer_id)
SELECT a.customer_id
FROM tmp_tag_add a
LEFT JOIN customer_aggregates ca ON ca.customer_id = a.customer_id
WHERE COALESCE(ca.counted_orders, -1) <> (
    SELECT COUNT(*) FROM orders o WHERE o.customer_id = a.customer_id AND o.paid_at < :old_cutoff
) AND (ca.customer_id IS NOT NULL OR EXISTS (
    SELECT 1 FROM orders o WHERE o.customer_id = a.customer_id AND o.paid_at < :old_cutoff
));
DELETE FROM tmp_tag_add WHERE customer_id IN (SELECT customer_id FROM tmp_tag_delta)
