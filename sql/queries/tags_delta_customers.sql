-- tags_delta_customers: what a night's delta means for each customer, as three sets
-- (indexed ranges only, never a scan of every order):
--   recompute  an order changed at the source (updated_at past the watermark, or unknown)
--              and its payment time is not in the new day(s) [old_cutoff, cutoff): it may
--              have been counted before, so the customer is recomputed from the orders;
--   additions  orders paid in [old_cutoff, cutoff): never counted before (the previous
--              refresh counted orders paid before old_cutoff only), added to the aggregate;
--   window     orders paid in [old_window_start, window_start) left the loyalty window.
INSERT INTO tmp_tag_delta (customer_id)
SELECT o.customer_id FROM orders o
WHERE (o.updated_at > :watermark OR o.updated_at IS NULL)
  AND NOT (o.paid_at >= :old_cutoff AND o.paid_at < :cutoff)
UNION
SELECT o.customer_id FROM orders o
WHERE (o.updated_at > :watermark OR o.updated_at IS NULL) AND o.paid_at IS NULL;
INSERT INTO tmp_tag_add (customer_id)
SELECT DISTINCT o.customer_id FROM orders o
WHERE o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM tmp_tag_delta d WHERE d.customer_id = o.customer_id)
