INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code) VALUES (:contact_id, :code);
