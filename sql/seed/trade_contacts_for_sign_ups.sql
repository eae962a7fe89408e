SELECT c.contact_email, min(a.dr_cust_code)
FROM erp.crm_contact AS c
JOIN erp.crm_contact_account AS a USING (contact_id)
JOIN erp.deb_master AS d ON d.dr_cust_code = a.dr_cust_code
WHERE c.contact_active AND d.dr_cust_type = 'TRADE' AND d.dr_account_status = 'A'
  AND c.contact_email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
GROUP BY c.contact_email HAVING count(DISTINCT c.contact_id) = 1
ORDER BY min(c.contact_id) LIMIT 2;
