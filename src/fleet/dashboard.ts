export const DASHBOARD_HTML = '<!doctype html><title>Shoal fleet</title>';
