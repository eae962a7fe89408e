-- The pairs with a change for the ERP (U4), each field with its new value and which way it goes.
SELECT dr_cust_code, email, email_way, name, name_way, address1, address1_way, address2, address2_way,
       address3, address3_way, address4, address4_way, address5, address5_way, address6, address6_way,
       phone_number, phone_number_way, postcode, postcode_way, abn, abn_way, industry_code, industry_code_way
  FROM userdebtor.plan_field_change_by_pair
 WHERE any_to_erp
