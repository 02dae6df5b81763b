-- tags_agg_merge (PostgreSQL): fold tmp_add_agg (tonight's additions) into
-- customer_aggregates as one upsert of the merged rows ({merged_all}: tags_agg_merged, every
-- customer of tmp_add_agg); then lower the loyalty window of those whose orders left it.
INSERT INTO customer_aggregates (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, favourite_category, favourite_category_qty, items_qty,
    preferred_channel, preferred_channel_orders, counted_orders, updated_at
)
SELECT m.*, :now FROM ({merged_all}) m
WHERE true
ON CONFLICT (customer_id) DO UPDATE SET
    first_paid_at = excluded.first_paid_at,
    second_paid_at = excluded.second_paid_at,
    last_paid_at = excluded.last_paid_at,
    paid_orders = excluded.paid_orders,
    paid_amount = excluded.paid_amount,
    discounted_orders = excluded.discounted_orders,
    purchase_days = excluded.purchase_days,
    weekend_orders = excluded.weekend_orders,
    window_orders = excluded.window_orders,
    window_amount = excluded.window_amount,
    returned_orders = excluded.returned_orders,
    favourite_category = excluded.favourite_category,
    favourite_category_qty = excluded.favourite_category_qty,
    items_qty = excluded.items_qty,
    preferred_channel = excluded.preferred_channel,
    preferred_channel_orders = excluded.preferred_channel_orders,
    counted_orders = excluded.counted_orders,
    updated_at = excluded.updated_at;
{window_out}
