-- Creates web.role of the contract; run only when the table is missing.
CREATE TABLE IF NOT EXISTS web.role (
    role_name    text PRIMARY KEY,
    description  text,
    is_b2c       boolean NOT NULL
);
-- The two roles every store has; a site may add its own.
INSERT INTO web.role (role_name, description, is_b2c) VALUES
    ('B2C', 'Retail customer buying on their own account', true),
    ('B2B', 'Trade customer buying for one or more accounts', false)
ON CONFLICT (role_name) DO NOTHING;
