include $(sort $(wildcard $(BR2_EXTERNAL_IMBOX_PATH)/package/*/*.mk))
