-- tags_delta_check: which candidate customers can fold the night's delta into their
-- aggregate (tmp_tag_add), and which are recomputed from their orders (tmp_tag_delta).
-- The previous refresh counted counted_orders orders (any status) paid before old_cutoff.
-- The customer's unchanged orders (updated_at not past the watermark) are as they were then;
-- the counted orders that changed or vanished since are the removed ones (tmp_tag_removed).
-- If the unchanged orders paid before old_cutoff number exactly counted_orders - removed,
-- every counted order is either unchanged or removed (its previous values known): fold.
-- The customer's changed orders paid before the cutoff, and the new day's, are then added
-- (tmp_add_orders: late arrivals paid in a day already counted included) and the removed
-- ones taken back. Otherwise (a counted order changed with no trace: no trigger, an update
-- that kept its stamp, a TRUNCATE; a removed order deleted or with items changed since, so
-- its items cannot be taken back) the customer is recomputed. Index-only count on
-- ix_orders_customer_paid.
INSERT INTO tmp_tag_delta (customer_id)
SELECT c.customer_id
FROM tmp_tag_cand c
LEFT JOIN customer_aggregates ca ON ca.customer_id = c.customer_id
WHERE CASE WHEN ca.customer_id IS NULL THEN 0 ELSE COALESCE(ca.counted_orders, -1) END - c.removed <> (
    SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.customer_id AND o.paid_at < :old_cutoff
) - c.changed_before
OR (c.removed > 0 AND EXISTS (
    SELECT 1 FROM tmp_tag_removed r
    WHERE r.customer_id = c.customer_id
      AND (r.deleted OR EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = r.order_id AND i.updated_at > :watermark))
));
INSERT INTO tmp_tag_add (customer_id)
SELECT c.customer_id FROM tmp_tag_cand c
WHERE NOT EXISTS (SELECT 1 FROM tmp_tag_delta d WHERE d.customer_id = c.customer_id);
DELETE FROM tmp_tag_removed WHERE customer_id IN (SELECT customer_id FROM tmp_tag_delta);
-- the orders to add: the changed ones paid before the cutoff, and the new day's (read from
-- the day's range of payment times: {no_index} keeps SQLite from seeking every customer of
-- tmp_tag_add in the orders instead, ~95k seeks for the few orders not already changed)
INSERT INTO tmp_add_orders (customer_id, order_id, paid_at, status, amount, discount_amount, channel)
SELECT c.customer_id, c.order_id, c.paid_at, c.status, c.amount, c.discount_amount, c.channel
FROM tmp_tag_changed c
WHERE c.paid_at < :cutoff AND c.customer_id IN (SELECT customer_id FROM tmp_tag_add);
INSERT INTO tmp_add_orders (customer_id, order_id, paid_at, status, amount, discount_amount, channel)
SELECT o.customer_id, o.order_id, o.paid_at, o.status, o.amount, o.discount_amount, o.channel
FROM orders o
WHERE o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
  AND {no_index}o.customer_id IN (SELECT customer_id FROM tmp_tag_add)
  AND NOT EXISTS (SELECT 1 FROM tmp_tag_changed c WHERE c.order_id = o.order_id)
