-- tags_agg_orders: one row per customer with orders paid before the cutoff, into {target}:
-- their order facts (tags_agg_order_facts, rendered into {facts}; a full pass on PostgreSQL
-- reads them beforehand on a second connection and {facts} is then the work table
-- tmp_order_facts) with their category and channel preferences from tmp_top_category /
-- tmp_top_channel (tags_agg_category, tags_agg_channel, tags_agg_top), filled just before.
INSERT INTO {target} (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, favourite_category, favourite_category_qty, items_qty,
    preferred_channel, preferred_channel_orders, counted_orders, updated_at
)
SELECT
    b.customer_id,
    b.first_paid_at,
    b.second_paid_at,
    b.last_paid_at,
    b.paid_orders,
    b.paid_amount,
    b.discounted_orders,
    b.purchase_days,
    b.weekend_orders,
    b.window_orders,
    b.window_amount,
    b.returned_orders,
    tc.category,
    tc.qty,
    tc.total,
    ch.channel,
    ch.n,
    b.counted_orders,
    :now
FROM {facts} b
LEFT JOIN tmp_top_category tc ON tc.customer_id = b.customer_id
LEFT JOIN tmp_top_channel ch ON ch.customer_id = b.customer_id
