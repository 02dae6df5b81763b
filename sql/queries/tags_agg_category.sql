-- tags_agg_category: each customer's favourite category (most items bought in paid
-- orders before the cutoff; ties: alphabetical) with its quantity and the total.
INSERT INTO tmp_top_category (customer_id, category, qty, total)
SELECT customer_id, category, qty, total FROM (
    SELECT customer_id, category, qty,
           SUM(qty) OVER (PARTITION BY customer_id) AS total,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY qty DESC, category) AS rk
    FROM (
        SELECT o.customer_id, i.category, SUM(COALESCE(i.quantity, 1)) AS qty
        FROM {orders}
        JOIN order_items i ON i.order_id = o.order_id
        WHERE {scope}o.paid_at < :cutoff AND o.status = 'paid' AND i.category IS NOT NULL
        GROUP BY o.customer_id, i.category
    ) category_qty
) ranked
WHERE rk = 1
