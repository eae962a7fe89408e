-- Every tenth user with a well-formed e-mail may turn up at the shop counter and give it.
INSERT INTO seed_user_email
SELECT row_number() OVER (ORDER BY user_id), email_address
FROM web.app_user
WHERE user_id % 10 = 0 AND email_address ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$';
