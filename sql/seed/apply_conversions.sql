-- The ERP converts in one transaction per run: the old code leaves deb_master, contacts and orders.
DELETE FROM erp.deb_master AS d USING seed_code_change AS m
WHERE d.dr_cust_code = m.old_code AND m.is_merge;

UPDATE erp.deb_master AS d SET dr_cust_code = m.new_code, dr_date_last_changed = m.converted_at
FROM seed_code_change AS m WHERE d.dr_cust_code = m.old_code AND NOT m.is_merge;

UPDATE erp.deb_master AS d SET dr_date_last_changed = m.converted_at
FROM seed_code_change AS m WHERE d.dr_cust_code = m.new_code AND m.is_merge;

-- A contact of both merged accounts keeps one link.
DELETE FROM erp.crm_contact_account AS a USING seed_code_change AS m
WHERE a.dr_cust_code = m.old_code
  AND EXISTS (SELECT 1 FROM erp.crm_contact_account AS b
              WHERE b.contact_id = a.contact_id AND b.dr_cust_code = m.new_code);

UPDATE erp.crm_contact_account AS a SET dr_cust_code = m.new_code
FROM seed_code_change AS m WHERE a.dr_cust_code = m.old_code;

UPDATE erp.sales_order AS o SET so_cust_code = m.new_code,
       so_date_stamp = greatest(o.so_date_stamp, m.converted_at)
FROM seed_code_change AS m WHERE o.so_cust_code = m.old_code;
