-- tags_delta_customers: the night's delta (indexed ranges only, never a scan of every order).
--   tmp_tag_changed  orders changed at the source since the watermark (updated_at past it, or
--                    unknown), with their current values: new to the warehouse, or edited
--   tmp_tag_removed  what the previous refresh counted of the orders changed or deleted since:
--                    their values before the first change (order_changes, written by the
--                    database's triggers on orders), when they existed then (stamped no later
--                    than the watermark) and were paid before old_cutoff
--   tmp_tag_cand     the customers of either, and those of the orders paid in the new day(s)
--                    [old_cutoff, cutoff) (never counted: the previous refresh counted orders
--                    paid before old_cutoff only); changed_before = how many of the customer's
--                    changed orders are paid before old_cutoff now, removed = how many counted
--                    orders they lose (tags_delta_check)
INSERT INTO tmp_tag_changed (order_id, customer_id, paid_at, status, amount, discount_amount, channel)
SELECT o.order_id, o.customer_id, o.paid_at, o.status, o.amount, o.discount_amount, o.channel
FROM orders o
WHERE o.updated_at > :watermark OR o.updated_at IS NULL;
INSERT INTO tmp_tag_removed (customer_id, order_id, paid_at, status, amount, discount_amount, channel, deleted)
SELECT r.customer_id, r.order_id, r.paid_at, r.status, r.amount, r.discount_amount, r.channel, r.deleted
FROM order_changes r
WHERE r.updated_at <= :watermark AND r.paid_at < :old_cutoff AND r.customer_id IS NOT NULL;
INSERT INTO tmp_tag_cand (customer_id, changed_before, removed)
SELECT x.customer_id, SUM(x.before), SUM(x.removed) FROM (
    SELECT c.customer_id, CASE WHEN c.paid_at < :old_cutoff THEN 1 ELSE 0 END AS before, 0 AS removed FROM tmp_tag_changed c
    UNION ALL
    SELECT r.customer_id, 0, 1 FROM tmp_tag_removed r
    UNION ALL
    SELECT o.customer_id, 0, 0 FROM orders o WHERE o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
) x
GROUP BY x.customer_id
