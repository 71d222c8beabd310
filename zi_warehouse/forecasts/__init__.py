"""The forecast workbook channel: template and header maps, parsing, reading, validation, feedback."""
