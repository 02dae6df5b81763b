-- tags_agg_channel: paid orders per (customer, channel) before the cutoff, into
-- {ch_table} (the preferred channel is picked from it: tags_agg_top).
-- {orders}/{scope}: every order, or the orders of the customers in tmp_tag_delta.
INSERT INTO {ch_table} (customer_id, channel, n)
SELECT o.customer_id, o.channel, COUNT(*) AS n
FROM {orders}
WHERE {scope}{plus}o.paid_at < :cutoff AND o.status = 'paid' AND o.channel IS NOT NULL
GROUP BY o.customer_id, o.channel
