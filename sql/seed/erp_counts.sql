SELECT (SELECT count(*) FROM erp.deb_master), (SELECT count(*) FROM erp.crm_contact),
(SELECT count(*) FROM erp.crm_contact_account), (SELECT count(*) FROM erp.deb_conversion),
(SELECT count(*) FROM erp.sales_order);
