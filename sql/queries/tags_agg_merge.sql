-- tags_agg_merge: fold tmp_add_agg (tonight's additions) into customer_aggregates. Sums and
-- counts add up (the additions' purchase days are only days the customer had no counted
-- order on: tags_agg_additions). Payment times merge in both directions, since a late
-- arrival may be paid before what was counted: first = the earlier first; second = the
-- smallest of both sides' first/second later than the new first (each side's second is its
-- smallest time after its first, so no other time can be smaller); last = the later last.
-- The favourite category and preferred channel come from tmp_top_category / tmp_top_channel.
INSERT INTO customer_aggregates (
    customer_id, first_paid_at, second_paid_at, last_paid_at, paid_orders, paid_amount,
    discounted_orders, purchase_days, weekend_orders, window_orders, window_amount,
    returned_orders, favourite_category, favourite_category_qty, items_qty,
    preferred_channel, preferred_channel_orders, counted_orders, updated_at
)
SELECT m.customer_id, m.first_paid_at,
       CASE WHEN m.pc IS NULL THEN m.pa WHEN m.pa IS NULL OR m.pc < m.pa THEN m.pc ELSE m.pa END,
       m.last_paid_at, m.paid_orders, m.paid_amount, m.discounted_orders, m.purchase_days,
       m.weekend_orders, m.window_orders, m.window_amount, m.returned_orders,
       tc.category, tc.qty, tc.total, ch.channel, ch.n, m.counted_orders, :now
FROM (
    SELECT f.*,
           CASE WHEN f.c_first > f.first_paid_at THEN f.c_first WHEN f.c_second > f.first_paid_at THEN f.c_second END AS pc,
           CASE WHEN f.a_first > f.first_paid_at THEN f.a_first WHEN f.a_second > f.first_paid_at THEN f.a_second END AS pa
    FROM (
        SELECT a.customer_id,
               ca.first_paid_at AS c_first, ca.second_paid_at AS c_second,
               a.first_paid_at AS a_first, a.second_paid_at AS a_second,
               CASE WHEN ca.first_paid_at IS NULL OR a.first_paid_at < ca.first_paid_at
                    THEN COALESCE(a.first_paid_at, ca.first_paid_at) ELSE ca.first_paid_at END AS first_paid_at,
               CASE WHEN ca.last_paid_at IS NULL OR a.last_paid_at > ca.last_paid_at
                    THEN COALESCE(a.last_paid_at, ca.last_paid_at) ELSE ca.last_paid_at END AS last_paid_at,
               COALESCE(ca.paid_orders, 0) + a.paid_orders AS paid_orders,
               COALESCE(ca.paid_amount, 0) + a.paid_amount AS paid_amount,
               COALESCE(ca.discounted_orders, 0) + a.discounted_orders AS discounted_orders,
               COALESCE(ca.purchase_days, 0) + a.purchase_days AS purchase_days,
               COALESCE(ca.weekend_orders, 0) + a.weekend_orders AS weekend_orders,
               COALESCE(ca.window_orders, 0) + a.window_orders AS window_orders,
               COALESCE(ca.window_amount, 0) + a.window_amount AS window_amount,
               COALESCE(ca.returned_orders, 0) + a.returned_orders AS returned_orders,
               COALESCE(ca.counted_orders, 0) + a.counted_orders AS counted_orders
        FROM tmp_add_agg a
        LEFT JOIN customer_aggregates ca ON ca.customer_id = a.customer_id
    ) f
) m
LEFT JOIN tmp_top_category tc ON tc.customer_id = m.customer_id
LEFT JOIN tmp_top_channel ch ON ch.customer_id = m.customer_id
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
UPDATE customer_aggregates SET
    window_orders = customer_aggregates.window_orders - w.n,
    window_amount = customer_aggregates.window_amount - w.amount,
    updated_at = :now
FROM tmp_tag_window w
WHERE customer_aggregates.customer_id = w.customer_id
