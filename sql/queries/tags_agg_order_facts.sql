-- tags_agg_order_facts: each customer's order facts from the orders paid before the cutoff
-- (one row per customer): payment times, counts and sums (tags_agg_orders adds the picks and
-- writes them). Purchases are orders with status 'paid'; refunded and cancelled orders never
-- count as purchases (they are only counted in returned_orders). {orders} and {scope} limit
-- the customers (incremental refresh: those in tmp_tag_delta, driving the join so each
-- customer's orders are read by index; full: every customer).
-- counted_orders: every order (any status) paid before the cutoff (tags_delta_check).
-- Dialect pieces: {paid_day} = the shop-local day of paid_at, {paid_dow} = its weekday
-- (0 = Sunday), {float} = the floating type, {plus} = '+' on SQLite in a full pass (scan the
-- orders in customer order, never look each one up through the paid_at index).
-- A full pass on PostgreSQL reads it on a second connection, on the same snapshot, while the
-- category and channel counts run (tags.build_aggregates).
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
    FROM {orders}
    WHERE {scope}{plus}o.paid_at < :cutoff
    GROUP BY o.customer_id
)
SELECT
    b.customer_id, b.first_paid_at, b.last_paid_at, b.paid_orders, b.paid_amount, b.discounted_orders,
    b.purchase_days, b.weekend_orders, b.window_orders, b.window_amount, b.returned_orders, b.counted_orders,
    (SELECT MIN(o2.paid_at) FROM orders o2
      WHERE o2.customer_id = b.customer_id AND o2.status = 'paid'
        AND o2.paid_at > b.first_paid_at AND o2.paid_at < :cutoff) AS second_paid_at
FROM base b
