// Parameters for infra/main.bicep. Override on the command line, e.g.
//   az deployment group create ... --parameters infra/main.bicepparam --parameters trainJobImageTag=v1
// The Event Grid subscription is a separate template, deployed after the code: infra/eventgrid.bicep.
using './main.bicep'

param environmentName = readEnvironmentVariable('CLASSIFIER_ENV_NAME', 'classifier-dev')
param functionInstanceMemoryMB = 2048
param functionMaximumInstanceCount = 40
param gpuWorkloadProfileType = 'Consumption-GPU-NC8as-T4'
param trainJobCpu = 8
param trainJobMemory = '56Gi'
param containerRegistrySku = readEnvironmentVariable('CLASSIFIER_REGISTRY_SKU', 'Basic')
param trainJobImageTag = readEnvironmentVariable('CLASSIFIER_TRAINJOB_IMAGE_TAG', '')
param operatorPrincipalId = readEnvironmentVariable('CLASSIFIER_OPERATOR_PRINCIPAL_ID', '')
param reviewSignInClientId = readEnvironmentVariable('CLASSIFIER_REVIEW_CLIENT_ID', '')
param customVisionProjects = readEnvironmentVariable('CLASSIFIER_CUSTOMVISION_PROJECTS', '')
param customVisionKeyVaultName = readEnvironmentVariable('CLASSIFIER_CUSTOMVISION_KEYVAULT', '')
