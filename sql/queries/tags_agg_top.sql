-- tags_agg_top (PostgreSQL): each customer's favourite category (most items; ties: first
-- by character code) with its quantity and the total, and preferred channel (most paid
-- orders; ties the same), from {cat_table} / {ch_table}: every customer, or (incremental) the
-- customers of a work table ({top_driver} / {top_scope} drive the join from it).
-- Ties break by character code, as SQLite's BINARY order breaks them (tags_agg_top_keyed),
-- whatever the database's collation: the count tables and work tables compare text with
-- COLLATE "C" (migration 0011_byte_order_text, _temp_table), which is also the cheaper sort.
INSERT INTO tmp_top_category (customer_id, category, qty, total)
SELECT customer_id, category, qty, total FROM (
    SELECT c.customer_id, c.category, c.qty,
           SUM(c.qty) OVER (PARTITION BY c.customer_id) AS total,
           ROW_NUMBER() OVER (PARTITION BY c.customer_id ORDER BY c.qty DESC, c.category) AS rk
    FROM {top_driver}{cat_table} c
    WHERE {top_scope}c.qty > 0
) ranked
WHERE rk = 1;
INSERT INTO tmp_top_channel (customer_id, channel, n)
SELECT customer_id, channel, n FROM (
    SELECT c.customer_id, c.channel, c.n,
           ROW_NUMBER() OVER (PARTITION BY c.customer_id ORDER BY c.n DESC, c.channel) AS rk
    FROM {top_driver}{ch_table} c
    WHERE {top_scope}c.n > 0
) ranked
WHERE rk = 1
