-- tags_agg_top_delta: tags_agg_top for the customers of {top_table} only (a night's
-- recomputed and added customers): each customer's counts read by key, no sort of the
-- whole table. Same picks: most items / paid orders, ties alphabetical. Two passes over a
-- customer's counts: their largest count (and total), then the first category / channel in
-- key order holding it (no sort: the key is (customer_id, category / channel)). CROSS JOIN:
-- SQLite walks the work table in key order and seeks each customer's counts (grouped in
-- that order: no sort), never the other way round.
INSERT INTO tmp_top_category (customer_id, category, qty, total)
WITH top AS MATERIALIZED (
    SELECT d.customer_id, MAX(c.qty) AS qty, SUM(c.qty) AS total
    FROM {top_table} d CROSS JOIN {cat_table} c ON c.customer_id = d.customer_id
    WHERE c.qty > 0
    GROUP BY d.customer_id
)
SELECT t.customer_id,
       (SELECT c.category FROM {cat_table} c WHERE c.customer_id = t.customer_id AND c.qty = t.qty
         ORDER BY c.category LIMIT 1),
       t.qty, t.total
FROM top t;
INSERT INTO tmp_top_channel (customer_id, channel, n)
WITH top AS MATERIALIZED (
    SELECT d.customer_id, MAX(c.n) AS n
    FROM {top_table} d CROSS JOIN {ch_table} c ON c.customer_id = d.customer_id
    WHERE c.n > 0
    GROUP BY d.customer_id
)
SELECT t.customer_id,
       (SELECT c.channel FROM {ch_table} c WHERE c.customer_id = t.customer_id AND c.n = t.n
         ORDER BY c.channel LIMIT 1),
       t.n
FROM top t
