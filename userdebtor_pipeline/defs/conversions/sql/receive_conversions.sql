-- Copies the staged ERP conversions that the web does not have yet into web.customer_conversion (C1).
INSERT INTO web.customer_conversion (conversion_seq, old_code, new_code, conversion_date, received_at)
SELECT c.conversion_seq, c.old_cust_code, c.new_cust_code, c.conversion_date, now()
  FROM userdebtor.erp_conversion c
 WHERE NOT EXISTS (SELECT 1 FROM web.customer_conversion w WHERE w.conversion_seq = c.conversion_seq)
ON CONFLICT (conversion_seq) DO NOTHING
