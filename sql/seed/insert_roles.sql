INSERT INTO web.role (role_name, description, is_b2c)
VALUES ('B2C', 'Retail customer buying on their own account', true),
       ('B2B', 'Trade customer buying for one or more accounts', false)
ON CONFLICT (role_name) DO NOTHING;
