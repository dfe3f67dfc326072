// Azure Container Registry for the TrainJob images. Admin user and anonymous pull are off: pulls
// use Entra ID (the training job's user-assigned identity has AcrPull, see trainJob.bicep) and
// images are built in the registry with `az acr build` (ACR Tasks), so no local Docker is needed.

@description('Azure region.')
param location string

@description('Tags for every resource.')
param tags { *: string }

@description('Registry name (5-50 letters and digits, globally unique).')
@minLength(5)
@maxLength(50)
param name string

@description('Registry SKU.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param skuName string = 'Basic'

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output id string = registry.id
output name string = registry.name
output loginServer string = registry.properties.loginServer
