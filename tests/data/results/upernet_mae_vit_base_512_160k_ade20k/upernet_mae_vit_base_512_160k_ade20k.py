# the config mmengine dumps into its work dir (only its name matters here)
