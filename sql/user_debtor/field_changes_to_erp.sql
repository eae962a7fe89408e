-- One row per debtor with the web's changes to write to the ERP (U4): a set_* flag and the value per field.
SELECT dr_cust_code,
       bool_or(field = 'OrderEmailAddress') AS set_email,     max(new_value) FILTER (WHERE field = 'OrderEmailAddress') AS dr_email,
       bool_or(field = 'Name') AS set_name,                   max(new_value) FILTER (WHERE field = 'Name') AS dr_cust_name,
       bool_or(field = 'Address1') AS set_addr_1,             max(new_value) FILTER (WHERE field = 'Address1') AS dr_addr_1,
       bool_or(field = 'Address2') AS set_addr_2,             max(new_value) FILTER (WHERE field = 'Address2') AS dr_addr_2,
       bool_or(field = 'Address3') AS set_addr_3,             max(new_value) FILTER (WHERE field = 'Address3') AS dr_addr_3,
       bool_or(field = 'Address4') AS set_addr_4,             max(new_value) FILTER (WHERE field = 'Address4') AS dr_addr_4,
       bool_or(field = 'Address5') AS set_addr_5,             max(new_value) FILTER (WHERE field = 'Address5') AS dr_addr_5,
       bool_or(field = 'Address6') AS set_addr_6,             max(new_value) FILTER (WHERE field = 'Address6') AS dr_addr_6,
       bool_or(field = 'PhoneNumber') AS set_phone,           max(new_value) FILTER (WHERE field = 'PhoneNumber') AS dr_phone,
       bool_or(field = 'Postcode') AS set_postcode,           max(new_value) FILTER (WHERE field = 'Postcode') AS dr_postcode,
       bool_or(field = 'ABN') AS set_abn,                     max(new_value) FILTER (WHERE field = 'ABN') AS dr_abn,
       bool_or(field = 'industrycode') AS set_industry_code,  max(new_value) FILTER (WHERE field = 'industrycode') AS dr_industry_code
  FROM userdebtor.plan_field_change
 WHERE direction = 'to_erp'
 GROUP BY dr_cust_code
