"""Order history (O1-O2): the ERP's orders shown on the web's Order History page."""
