-- Writes the web's changes (copied into _debtor_change) to the ERP; the ERP's write stamps dr_date_last_changed.
UPDATE erp.deb_master d SET
    dr_email         = CASE WHEN c.email_way = 'to_erp' THEN c.email ELSE d.dr_email END,
    dr_cust_name     = CASE WHEN c.name_way = 'to_erp' THEN c.name ELSE d.dr_cust_name END,
    dr_addr_1        = CASE WHEN c.address1_way = 'to_erp' THEN c.address1 ELSE d.dr_addr_1 END,
    dr_addr_2        = CASE WHEN c.address2_way = 'to_erp' THEN c.address2 ELSE d.dr_addr_2 END,
    dr_addr_3        = CASE WHEN c.address3_way = 'to_erp' THEN c.address3 ELSE d.dr_addr_3 END,
    dr_addr_4        = CASE WHEN c.address4_way = 'to_erp' THEN c.address4 ELSE d.dr_addr_4 END,
    dr_addr_5        = CASE WHEN c.address5_way = 'to_erp' THEN c.address5 ELSE d.dr_addr_5 END,
    dr_addr_6        = CASE WHEN c.address6_way = 'to_erp' THEN c.address6 ELSE d.dr_addr_6 END,
    dr_phone         = CASE WHEN c.phone_number_way = 'to_erp' THEN c.phone_number ELSE d.dr_phone END,
    dr_postcode      = CASE WHEN c.postcode_way = 'to_erp' THEN c.postcode ELSE d.dr_postcode END,
    dr_abn           = CASE WHEN c.abn_way = 'to_erp' THEN c.abn ELSE d.dr_abn END,
    dr_industry_code = CASE WHEN c.industry_code_way = 'to_erp' THEN c.industry_code ELSE d.dr_industry_code END,
    dr_date_last_changed = now()
  FROM _debtor_change c
 WHERE d.dr_cust_code = c.dr_cust_code
