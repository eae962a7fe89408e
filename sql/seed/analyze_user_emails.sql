ANALYZE seed_user_email;
