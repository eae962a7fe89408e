"""Extract: stage the ERP's and the web's rows into schema `userdebtor`, changed-since or full."""
