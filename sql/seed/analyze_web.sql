ANALYZE web.app_user, web.customer, web.user_customer, web.favourite, web.registration_request;
