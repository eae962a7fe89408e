-- Creates web.favourite of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.favourite (
    user_id        bigint NOT NULL,
    customer_code  text NOT NULL,
    product_code   text NOT NULL,
    PRIMARY KEY (user_id, customer_code, product_code)
);
CREATE INDEX IF NOT EXISTS favourite_code_idx ON web.favourite (customer_code);
