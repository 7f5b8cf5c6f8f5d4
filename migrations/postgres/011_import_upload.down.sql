DROP TABLE import_upload;
