-- tags_agg_channel: each customer's preferred channel (most paid orders before the
-- cutoff; ties: alphabetical) with its order count.
INSERT INTO tmp_top_channel (customer_id, channel, n)
SELECT customer_id, channel, n FROM (
    SELECT customer_id, channel, n,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY n DESC, channel) AS rk
    FROM (
        SELECT o.customer_id, o.channel, COUNT(*) AS n
        FROM {orders}
        WHERE {scope}o.paid_at < :cutoff AND o.status = 'paid' AND o.channel IS NOT NULL
        GROUP BY o.customer_id, o.channel
    ) channel_orders
) ranked
WHERE rk = 1
