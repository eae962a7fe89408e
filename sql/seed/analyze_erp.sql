-- Fresh planner statistics for the sync that follows.
ANALYZE erp.deb_master, erp.crm_contact, erp.crm_contact_account, erp.deb_conversion, erp.sales_order;
