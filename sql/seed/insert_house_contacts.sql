INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname, contact_phone,
                             contact_active, contact_date_last_changed)
VALUES (:contact_id, :email, :first, :surname, '02 9000 0001', true, :changed);
