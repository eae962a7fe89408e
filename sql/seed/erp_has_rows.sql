SELECT EXISTS (SELECT 1 FROM erp.deb_master), EXISTS (SELECT 1 FROM erp.crm_contact),
EXISTS (SELECT 1 FROM erp.crm_contact_account), EXISTS (SELECT 1 FROM erp.deb_conversion),
EXISTS (SELECT 1 FROM erp.sales_order);
