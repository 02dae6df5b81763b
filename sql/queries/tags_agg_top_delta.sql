-- tags_agg_top_delta: tags_agg_top for the customers of {top_table} only (a night's
-- recomputed and added customers): each customer's counts read by key, no sort of the
-- whole table. Same picks: most items / paid orders, ties alphabetical.
INSERT INTO tmp_top_category (customer_id, category, qty, total)
SELECT customer_id, category, qty, total FROM (
    SELECT d.customer_id,
        (SELECT c.category FROM {cat_table} c WHERE c.customer_id = d.customer_id AND c.qty > 0
          ORDER BY c.qty DESC, c.category LIMIT 1) AS category,
        (SELECT c.qty FROM {cat_table} c WHERE c.customer_id = d.customer_id AND c.qty > 0
          ORDER BY c.qty DESC, c.category LIMIT 1) AS qty,
        (SELECT SUM(c.qty) FROM {cat_table} c WHERE c.customer_id = d.customer_id AND c.qty > 0) AS total
    FROM {top_table} d
) picked
WHERE category IS NOT NULL;
INSERT INTO tmp_top_channel (customer_id, channel, n)
SELECT customer_id, channel, n FROM (
    SELECT d.customer_id,
        (SELECT c.channel FROM {ch_table} c WHERE c.customer_id = d.customer_id AND c.n > 0
          ORDER BY c.n DESC, c.channel LIMIT 1) AS channel,
        (SELECT c.n FROM {ch_table} c WHERE c.customer_id = d.customer_id AND c.n > 0
          ORDER BY c.n DESC, c.channel LIMIT 1) AS n
    FROM {top_table} d
) picked
WHERE channel IS NOT NULL
