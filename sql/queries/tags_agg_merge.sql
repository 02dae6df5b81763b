-- tags_agg_merge: fold tmp_add_agg (tonight's additions) into customer_aggregates: sums
-- add up; first/second/last payment times merge (every addition is later than every order
-- counted before); purchase days add up (the new days are later than the old ones); the
-- favourite category and preferred channel come from tmp_top_category / tmp_top_channel.
INSERT INTO customer_aggregates (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, favourite_category, favourite_category_qty, items_qty,
    preferred_channel, preferred_channel_orders, counted_orders, updated_at
)
SELECT a.customer_id, a.first_paid_at, a.second_paid_at, a.last_paid_at, a.paid_orders, a.paid_amount,
       a.discounted_orders, a.purchase_days, a.weekend_orders, a.window_orders, a.window_amount,
       a.returned_orders, tc.category, tc.qty, tc.total, ch.channel, ch.n, a.counted_orders, :now
FROM tmp_add_agg a
LEFT JOIN tmp_top_category tc ON tc.customer_id = a.customer_id
LEFT JOIN tmp_top_channel ch ON ch.customer_id = a.customer_id
WHERE true
ON CONFLICT (customer_id) DO UPDATE SET
    first_paid_at = COALESCE(customer_aggregates.first_paid_at, excluded.first_paid_at),
    second_paid_at = CASE
        WHEN customer_aggregates.first_paid_at IS NULL THEN excluded.second_paid_at
        WHEN customer_aggregates.second_paid_at IS NULL THEN excluded.first_paid_at
        ELSE customer_aggregates.second_paid_at END,
    last_paid_at = COALESCE(excluded.last_paid_at, customer_aggregates.last_paid_at),
    paid_orders = customer_aggregates.paid_orders + excluded.paid_orders,
    paid_amount = customer_aggregates.paid_amount + excluded.paid_amount,
    discounted_orders = customer_aggregates.discounted_orders + excluded.discounted_orders,
    purchase_days = customer_aggregates.purchase_days + excluded.purchase_days,
    weekend_orders = customer_aggregates.weekend_orders + excluded.weekend_orders,
    window_orders = customer_aggregates.window_orders + excluded.window_orders,
    window_amount = customer_aggregates.window_amount + excluded.window_amount,
    returned_orders = customer_aggregates.returned_orders + excluded.returned_orders,
    favourite_category = excluded.favourite_category,
    favourite_category_qty = excluded.favourite_category_qty,
    items_qty = excluded.items_qty,
    preferred_channel = excluded.preferred_channel,
    preferred_channel_orders = excluded.preferred_channel_orders,
    counted_orders = customer_aggregates.counted_orders + excluded.counted_orders,
    updated_at = excluded.updated_at;
UPDATE customer_aggregates SET
    window_orders = window_orders - (SELECT w.n FROM tmp_tag_window w WHERE w.customer_id = customer_aggregates.customer_id),
    window_amount = window_amount - (SELECT w.amount FROM tmp_tag_window w WHERE w.customer_id = customer_aggregates.customer_id),
    updated_at = :now
WHERE customer_id IN (SELECT customer_id FROM tmp_tag_window)
