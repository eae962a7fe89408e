-- Creates erp.sales_order of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS erp.sales_order (
    so_order_no      text PRIMARY KEY,
    so_cust_code     text NOT NULL,
    so_order_date    timestamptz NOT NULL,
    so_order_status  text NOT NULL,
    so_source        text NOT NULL,
    so_email         text,
    so_order_total   numeric(14,2) NOT NULL,
    so_date_stamp    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deb_master_last_changed_idx ON erp.deb_master (dr_date_last_changed);
CREATE INDEX IF NOT EXISTS crm_contact_last_changed_idx ON erp.crm_contact (contact_date_last_changed);
CREATE INDEX IF NOT EXISTS sales_order_date_stamp_idx ON erp.sales_order (so_date_stamp);
