-- Writes the web's changes (copied into _debtor_change) to the ERP; the ERP's write stamps dr_date_last_changed.
UPDATE erp.deb_master d SET
    dr_email         = CASE WHEN c.set_email THEN c.dr_email ELSE d.dr_email END,
    dr_cust_name     = CASE WHEN c.set_name THEN c.dr_cust_name ELSE d.dr_cust_name END,
    dr_addr_1        = CASE WHEN c.set_addr_1 THEN c.dr_addr_1 ELSE d.dr_addr_1 END,
    dr_addr_2        = CASE WHEN c.set_addr_2 THEN c.dr_addr_2 ELSE d.dr_addr_2 END,
    dr_addr_3        = CASE WHEN c.set_addr_3 THEN c.dr_addr_3 ELSE d.dr_addr_3 END,
    dr_addr_4        = CASE WHEN c.set_addr_4 THEN c.dr_addr_4 ELSE d.dr_addr_4 END,
    dr_addr_5        = CASE WHEN c.set_addr_5 THEN c.dr_addr_5 ELSE d.dr_addr_5 END,
    dr_addr_6        = CASE WHEN c.set_addr_6 THEN c.dr_addr_6 ELSE d.dr_addr_6 END,
    dr_phone         = CASE WHEN c.set_phone THEN c.dr_phone ELSE d.dr_phone END,
    dr_postcode      = CASE WHEN c.set_postcode THEN c.dr_postcode ELSE d.dr_postcode END,
    dr_abn           = CASE WHEN c.set_abn THEN c.dr_abn ELSE d.dr_abn END,
    dr_industry_code = CASE WHEN c.set_industry_code THEN c.dr_industry_code ELSE d.dr_industry_code END,
    dr_date_last_changed = now()
  FROM _debtor_change c
 WHERE d.dr_cust_code = c.dr_cust_code
