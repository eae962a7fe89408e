INSERT INTO web.registration_request (email_address, account_code, requested_at, status)
VALUES (:email, :code, :at, 'pending');
