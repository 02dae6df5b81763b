-- tags_agg_additions: the delta of the customers in tmp_tag_add, as signed rows: +1 for the
-- orders never counted before (tmp_add_orders: the new day's, late arrivals paid in a day
-- already counted, the current values of changed orders), -1 for what the previous refresh
-- counted of the changed or deleted ones (tmp_tag_removed: their previous values).
-- 1. tmp_day_delta: purchase days gained or lost. For each (customer, shop-local day) with a
--    paid order added or removed: if an unchanged counted paid order is on that day, nothing
--    changes (looked up among the customer's orders on the covering index); else +1 when an
--    added paid order is on it, -1 when a removed one was (both: 0). The new day(s) come
--    after every counted day: no look-up.
-- 2. tmp_add_agg: the signed sums (the loyalty window: an added order against the new window
--    start, a removed one against the window it was counted in) and the added orders'
--    first / second / last paid times (tags_agg_merged merges them; a customer who lost a paid
--    order gets its times again from the covering index, tags_agg_times).
-- 3. the per-(customer, category) item and per-(customer, channel) order counts: the added
--    orders' items / channels in, the removed ones' out (items of these orders only, by key:
--    {items_join} is a per-order lookup on PostgreSQL, whose planner otherwise hashes every
--    item). A count taken back to 0 stays (the picks only read counts above 0).
INSERT INTO tmp_day_delta (customer_id, n)
SELECT x.customer_id, SUM(x.n) FROM (
    SELECT d.customer_id,
           CASE WHEN MIN(d.paid_at) >= :old_cutoff THEN MAX(d.a) - MAX(d.s)
                WHEN EXISTS (
                    SELECT 1 FROM orders o2
                    WHERE o2.customer_id = d.customer_id AND o2.paid_at < :old_cutoff AND o2.status = 'paid'
                      AND {paid_day2} = d.day
                      AND NOT EXISTS (SELECT 1 FROM tmp_add_orders x WHERE x.customer_id = o2.customer_id AND x.order_id = o2.order_id)
                ) THEN 0
                ELSE MAX(d.a) - MAX(d.s) END AS n
    FROM (
        SELECT o.customer_id, {paid_day} AS day, o.paid_at, 1 AS a, 0 AS s FROM tmp_add_orders o WHERE o.status = 'paid'
        UNION ALL
        SELECT o.customer_id, {paid_day}, o.paid_at, 0, 1 FROM tmp_tag_removed o WHERE o.status = 'paid'
    ) d
    GROUP BY d.customer_id, d.day
) x
GROUP BY x.customer_id;
INSERT INTO tmp_add_agg (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, counted_orders
)
WITH signed AS (
    SELECT o.customer_id, o.paid_at, o.status, o.amount, o.discount_amount, 1 AS sgn,
           CASE WHEN o.paid_at >= :window_start THEN 1 ELSE 0 END AS in_window
    FROM tmp_add_orders o
    UNION ALL
    SELECT o.customer_id, o.paid_at, o.status, o.amount, o.discount_amount, -1 AS sgn,
           CASE WHEN o.paid_at >= :old_window_start THEN 1 ELSE 0 END AS in_window
    FROM tmp_tag_removed o
),
base AS MATERIALIZED (
    SELECT
        o.customer_id,
        MIN(CASE WHEN o.status = 'paid' AND o.sgn = 1 THEN o.paid_at END) AS first_paid_at,
        MAX(CASE WHEN o.status = 'paid' AND o.sgn = 1 THEN o.paid_at END) AS last_paid_at,
        SUM(CASE WHEN o.status = 'paid' THEN o.sgn ELSE 0 END) AS paid_orders,
        SUM(CASE WHEN o.status = 'paid' THEN o.sgn * CAST(COALESCE(o.amount, 0) AS {float}) ELSE 0 END) AS paid_amount,
        SUM(CASE WHEN o.status = 'paid' AND o.discount_amount > 0
                  AND CAST(o.discount_amount AS {float}) >= :discount_min_rate * CAST(COALESCE(o.amount, 0) + o.discount_amount AS {float})
             THEN o.sgn ELSE 0 END) AS discounted_orders,
        SUM(CASE WHEN o.status = 'paid' AND {paid_dow} IN (0, 6) THEN o.sgn ELSE 0 END) AS weekend_orders,
        SUM(CASE WHEN o.status = 'paid' AND o.in_window = 1 THEN o.sgn ELSE 0 END) AS window_orders,
        SUM(CASE WHEN o.status = 'paid' AND o.in_window = 1 THEN o.sgn * CAST(COALESCE(o.amount, 0) AS {float}) ELSE 0 END) AS window_amount,
        SUM(CASE WHEN o.status IN ('refunded', 'cancelled') THEN o.sgn ELSE 0 END) AS returned_orders,
        SUM(o.sgn) AS counted_orders
    FROM signed o
    GROUP BY o.customer_id
)
SELECT
    b.customer_id,
    b.first_paid_at,
    s.second_paid_at,
    b.last_paid_at, b.paid_orders, b.paid_amount, b.discounted_orders,
    COALESCE(dd.n, 0) AS purchase_days,
    b.weekend_orders, b.window_orders, b.window_amount, b.returned_orders, b.counted_orders
FROM base b
LEFT JOIN tmp_day_delta dd ON dd.customer_id = b.customer_id
LEFT JOIN (
    SELECT o2.customer_id, MIN(o2.paid_at) AS second_paid_at
    FROM tmp_add_orders o2 JOIN base f ON f.customer_id = o2.customer_id
    WHERE o2.status = 'paid' AND o2.paid_at > f.first_paid_at
    GROUP BY o2.customer_id
) s ON s.customer_id = b.customer_id;
INSERT INTO {cat_table} (customer_id, category, qty)
SELECT x.customer_id, i.category, SUM(x.sgn * COALESCE(i.quantity, 1)) AS qty
FROM (
    SELECT o.customer_id, o.order_id, 1 AS sgn FROM tmp_add_orders o WHERE o.status = 'paid'
    UNION ALL
    SELECT o.customer_id, o.order_id, -1 AS sgn FROM tmp_tag_removed o WHERE o.status = 'paid'
) x
{items_join}
WHERE i.category IS NOT NULL
GROUP BY x.customer_id, i.category
ON CONFLICT (customer_id, category) DO UPDATE SET qty = {cat_table}.qty + excluded.qty;
INSERT INTO {ch_table} (customer_id, channel, n)
SELECT x.customer_id, x.channel, SUM(x.sgn) AS n
FROM (
    SELECT o.customer_id, o.channel, 1 AS sgn FROM tmp_add_orders o WHERE o.status = 'paid'
    UNION ALL
    SELECT o.customer_id, o.channel, -1 AS sgn FROM tmp_tag_removed o WHERE o.status = 'paid'
) x
WHERE x.channel IS NOT NULL
GROUP BY x.customer_id, x.channel
ON CONFLICT (customer_id, channel) DO UPDATE SET n = {ch_table}.n + excluded.n
