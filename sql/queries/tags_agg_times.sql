-- tags_agg_times: the first / second / last paid times of the folded customers who lost a
-- paid order tonight (tmp_tag_removed), again from their orders on the covering index
-- ix_orders_customer_paid (a removed time may have been any of them; no items read).
UPDATE customer_aggregates SET
    first_paid_at = (SELECT MIN(o.paid_at) FROM orders o
                      WHERE o.customer_id = r.customer_id AND o.status = 'paid' AND o.paid_at < :cutoff),
    second_paid_at = (SELECT MIN(o.paid_at) FROM orders o
                       WHERE o.customer_id = r.customer_id AND o.status = 'paid' AND o.paid_at < :cutoff
                         AND o.paid_at > (SELECT MIN(o3.paid_at) FROM orders o3
                                           WHERE o3.customer_id = r.customer_id AND o3.status = 'paid' AND o3.paid_at < :cutoff)),
    last_paid_at = (SELECT MAX(o.paid_at) FROM orders o
                     WHERE o.customer_id = r.customer_id AND o.status = 'paid' AND o.paid_at < :cutoff)
FROM (SELECT DISTINCT customer_id FROM tmp_tag_removed WHERE status = 'paid') r
WHERE customer_aggregates.customer_id = r.customer_id
