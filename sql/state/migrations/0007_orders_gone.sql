-- Remembers the orders the ERP deleted, as staging finds them, so that a changed-since run takes them out of the order history (O1, A3).

CREATE TABLE IF NOT EXISTS userdebtor.erp_sales_order_gone (
    so_order_no text PRIMARY KEY,
    change_seq  bigint NOT NULL DEFAULT nextval('userdebtor.change_seq')
);
CREATE INDEX IF NOT EXISTS erp_sales_order_gone_change_seq_idx ON userdebtor.erp_sales_order_gone (change_seq);
