-- tags_base: every member as of :cutoff (registered before it, or already buying) with
-- their order aggregate ({aggregates}: the maintained table or a freshly computed one).
-- {detail}: the figures only explanations need (left out of the nightly bulk read).
-- {members}: the membership condition (the nightly frame keeps every customer and applies
-- it in pandas: a member registered later becomes one when the cutoff passes).
SELECT
    c.customer_id,
    c.registered_at,
    a.first_paid_at,
    a.second_paid_at,
    a.last_paid_at,
    COALESCE(a.paid_orders, 0) AS paid_orders,
    COALESCE(a.paid_amount, 0) AS paid_amount,
    COALESCE(a.discounted_orders, 0) AS discounted_orders,
    COALESCE(a.weekend_orders, 0) AS weekend_orders,
    COALESCE(a.window_orders, 0) AS window_orders,
    COALESCE(a.returned_orders, 0) AS returned_orders,
    a.favourite_category,
    a.preferred_channel{detail}
FROM customers c
LEFT JOIN {aggregates} a ON a.customer_id = c.customer_id
{members}
