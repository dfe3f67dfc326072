// The Event Grid system topic for the storage account. The subscription that feeds the blob
// trigger lives in eventGridSubscription.bicep, deployed only once the app's code (and with it the
// blobs_extension system key) exists.

@description('Azure region (the storage account\'s).')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('System topic name.')
param name string

@description('Name of the storage account whose events the topic publishes.')
param storageAccountName string

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output id string = topic.id
output name string = topic.name
