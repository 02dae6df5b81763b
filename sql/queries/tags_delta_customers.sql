-- tags_delta_customers: the customers whose aggregate may have changed since the last
-- refresh: an order changed at the source (updated_at past the watermark, or unknown), an
-- order's payment time entered the counted range (the cutoff moved), or left the loyalty
-- window. One indexed range per branch.
SELECT o.customer_id FROM orders o WHERE o.updated_at > :watermark
UNION
SELECT o.customer_id FROM orders o WHERE o.updated_at IS NULL
UNION
SELECT o.customer_id FROM orders o WHERE o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
UNION
SELECT o.customer_id FROM orders o WHERE o.paid_at >= :old_window_start AND o.paid_at < :window_start
