-- tags_agg_merge_update (SQLite): fold tmp_add_agg (tonight's additions) into
-- customer_aggregates: the stored rows updated in place from the merged rows ({merged}:
-- tags_agg_merged over the customers with a stored row), then the customers new to the
-- table inserted ({merged_all}: over all of them; an upsert of the same rows cost twice as
-- much: an insert attempt, its conflict and the update, per row); then lower the loyalty
-- window of those whose orders left it.
UPDATE customer_aggregates SET
    first_paid_at = m.first_paid_at, second_paid_at = m.second_paid_at, last_paid_at = m.last_paid_at,
    paid_orders = m.paid_orders, paid_amount = m.paid_amount, discounted_orders = m.discounted_orders,
    purchase_days = m.purchase_days, weekend_orders = m.weekend_orders, window_orders = m.window_orders,
    window_amount = m.window_amount, returned_orders = m.returned_orders,
    favourite_category = m.favourite_category, favourite_category_qty = m.favourite_category_qty,
    items_qty = m.items_qty, preferred_channel = m.preferred_channel,
    preferred_channel_orders = m.preferred_channel_orders, counted_orders = m.counted_orders,
    updated_at = :now
FROM ({merged}) m
WHERE customer_aggregates.customer_id = m.customer_id;
INSERT INTO customer_aggregates (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, favourite_category, favourite_category_qty, items_qty,
    preferred_channel, preferred_channel_orders, counted_orders, updated_at
)
SELECT m.*, :now FROM ({merged_all}) m
WHERE NOT EXISTS (SELECT 1 FROM customer_aggregates ca WHERE ca.customer_id = m.customer_id);
{window_out}
