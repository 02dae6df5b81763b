-- tags_agg_window_out: lower the loyalty-window figures of the customers whose paid orders
-- left the window tonight (tmp_tag_window: tags_delta_window), as {window_out} of the merge.
UPDATE customer_aggregates SET
    window_orders = customer_aggregates.window_orders - w.n,
    window_amount = customer_aggregates.window_amount - w.amount,
    updated_at = :now
FROM tmp_tag_window w
WHERE customer_aggregates.customer_id = w.customer_id
