-- tags_agg_top: each customer's favourite category (most items; ties: alphabetical) with
-- its quantity and the total, and preferred channel (most paid orders; ties:
-- alphabetical), from {cat_table} / {ch_table}: every customer, or (incremental) the
-- customers of a work table ({top_driver} / {top_scope} drive the join from it).
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
