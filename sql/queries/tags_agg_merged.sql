-- tags_agg_merged: the stored aggregate of each customer in tmp_add_agg ({ca_join} JOIN:
-- LEFT for every one of them, INNER for those with a stored row) with tonight's additions
-- folded in: a SELECT that tags_agg_merge / tags_agg_merge_update write from (as {merged}).
-- Sums and counts add up (the additions' purchase days are only days the customer had no
-- counted order on: tags_agg_additions). Payment times merge in both directions, since a
-- late arrival may be paid before what was counted: first = the earlier first; second = the
-- smallest of both sides' first/second later than the new first (each side's second is its
-- smallest time after its first, so no other time can be smaller); last = the later last.
-- The favourite category and preferred channel come from tmp_top_category / tmp_top_channel.
SELECT m.customer_id, m.first_paid_at,
       CASE WHEN m.pc IS NULL THEN m.pa WHEN m.pa IS NULL OR m.pc < m.pa THEN m.pc ELSE m.pa END AS second_paid_at,
       m.last_paid_at, m.paid_orders, m.paid_amount, m.discounted_orders, m.purchase_days,
       m.weekend_orders, m.window_orders, m.window_amount, m.returned_orders,
       tc.category AS favourite_category, tc.qty AS favourite_category_qty, tc.total AS items_qty,
       ch.channel AS preferred_channel, ch.n AS preferred_channel_orders, m.counted_orders
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
        {ca_join} JOIN customer_aggregates ca ON ca.customer_id = a.customer_id
    ) f
) m
LEFT JOIN tmp_top_category tc ON tc.customer_id = m.customer_id
LEFT JOIN tmp_top_channel ch ON ch.customer_id = m.customer_id
