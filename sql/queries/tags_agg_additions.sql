-- tags_agg_additions: the orders paid in [old_cutoff, cutoff) of the customers in
-- tmp_tag_add (never counted before), aggregated like tags_agg_orders into tmp_add_agg, and
-- added to the per-(customer, category) item and per-(customer, channel) order counts.
INSERT INTO tmp_add_agg (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, counted_orders
)
WITH base AS (
    SELECT
        o.customer_id,
        MIN(CASE WHEN o.status = 'paid' THEN o.paid_at END) AS first_paid_at,
        MAX(CASE WHEN o.status = 'paid' THEN o.paid_at END) AS last_paid_at,
        SUM(CASE WHEN o.status = 'paid' THEN 1 ELSE 0 END) AS paid_orders,
        SUM(CASE WHEN o.status = 'paid' THEN CAST(COALESCE(o.amount, 0) AS {float}) ELSE 0 END) AS paid_amount,
        SUM(CASE WHEN o.status = 'paid' AND o.discount_amount > 0
                  AND CAST(o.discount_amount AS {float}) >= :discount_min_rate * CAST(COALESCE(o.amount, 0) + o.discount_amount AS {float})
             THEN 1 ELSE 0 END) AS discounted_orders,
        COUNT(DISTINCT CASE WHEN o.status = 'paid' THEN {paid_day} END) AS purchase_days,
        SUM(CASE WHEN o.status = 'paid' AND {paid_dow} IN (0, 6) THEN 1 ELSE 0 END) AS weekend_orders,
        SUM(CASE WHEN o.status = 'paid' AND o.paid_at >= :window_start THEN 1 ELSE 0 END) AS window_orders,
        SUM(CASE WHEN o.status = 'paid' AND o.paid_at >= :window_start THEN CAST(COALESCE(o.amount, 0) AS {float}) ELSE 0 END) AS window_amount,
        SUM(CASE WHEN o.status IN ('refunded', 'cancelled') THEN 1 ELSE 0 END) AS returned_orders,
        COUNT(*) AS counted_orders
    FROM orders o
    WHERE o.customer_id IN (SELECT customer_id FROM tmp_tag_add) AND o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
    GROUP BY o.customer_id
)
SELECT
    b.customer_id,
    b.first_paid_at,
    (SELECT MIN(o2.paid_at) FROM orders o2
      WHERE o2.customer_id = b.customer_id AND o2.status = 'paid'
        AND o2.paid_at > b.first_paid_at AND o2.paid_at < :cutoff) AS second_paid_at,
    b.last_paid_at, b.paid_orders, b.paid_amount, b.discounted_orders, b.purchase_days,
    b.weekend_orders, b.window_orders, b.window_amount, b.returned_orders, b.counted_orders
FROM base b;
INSERT INTO {cat_table} (customer_id, category, qty)
SELECT o.customer_id, i.category, SUM(COALESCE(i.quantity, 1)) AS qty
FROM orders o
JOIN order_items i ON i.order_id = o.order_id
WHERE o.customer_id IN (SELECT customer_id FROM tmp_tag_add) AND o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
  AND o.status = 'paid' AND i.category IS NOT NULL
GROUP BY o.customer_id, i.category
ON CONFLICT (customer_id, category) DO UPDATE SET qty = {cat_table}.qty + excluded.qty;
INSERT INTO {ch_table} (customer_id, channel, n)
SELECT o.customer_id, o.channel, COUNT(*) AS n
FROM orders o
WHERE o.customer_id IN (SELECT customer_id FROM tmp_tag_add) AND o.paid_at >= :old_cutoff AND o.paid_at < :cutoff
  AND o.status = 'paid' AND o.channel IS NOT NULL
GROUP BY o.customer_id, o.channel
ON CONFLICT (customer_id, channel) DO UPDATE SET n = {ch_table}.n + excluded.n
