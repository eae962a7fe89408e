-- M3's plan as the UI and the dry run show it: counts by action, and a sample.

-- step: customer_plan_counts
SELECT count(*) FILTER (WHERE action = 'create')     AS customers_to_create,
       count(*) FILTER (WHERE action = 'refresh')    AS customers_to_refresh,
       count(*) FILTER (WHERE action = 'inactivate') AS customers_to_inactivate
  FROM userdebtor.plan_customer_mirror

-- step: customer_plan
SELECT customer_code, action, reason
  FROM userdebtor.plan_customer_mirror
 ORDER BY action, customer_code
